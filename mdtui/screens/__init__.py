"""Modal screens: choosing an action's target, confirming it, help."""
