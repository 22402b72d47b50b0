"""govnode's rollout plugin: the phase schedule, its gate on letters, and the progress report."""
