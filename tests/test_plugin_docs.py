"""docs/plugins.md describes every hook, with the signature the node calls it with."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from govnode.hooks import specs

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def hook_signatures() -> dict[str, str]:
    return {
        name: f"def {name}{inspect.signature(function)}".replace("'", "")
        for name, function in inspect.getmembers(specs, inspect.isfunction)
        if name.startswith("govnode_")
    }


def test_every_hook_has_a_section_with_its_signature() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    hooks = hook_signatures()
    assert len(hooks) >= 10
    for name, signature in hooks.items():
        assert f"### `{name}`" in guide, f"{name} is missing from docs/plugins.md"
        assert signature in guide, f"docs/plugins.md shows {name} otherwise than\n{signature}"


def test_the_guide_documents_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^### `(govnode_\w+)`", GUIDE.read_text(encoding="utf-8"), re.M))
    assert documented == set(hook_signatures())
