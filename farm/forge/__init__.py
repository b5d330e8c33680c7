"""Talking to forges: commit statuses and check runs on GitHub, statuses on GitLab."""
