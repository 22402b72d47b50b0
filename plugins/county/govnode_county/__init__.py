"""govnode's county plugin: county offices (phase 3) brought in by their parent agency.

A provincial agency asks, through the API, for one of its county offices to
be enrolled with a key it made; the operator approves or rejects on the
command line; the parent then fetches the certificate, follows the letters
its offices send outside the province (with a copy when `copy_parent`), and
reads an office's letters for it until the office is enrolled.
"""
