"""Rules: validation with paths, conditions compiled once, a brand's rule set indexed by trigger,
the ``matches`` regex guard, and the dry run of an event rule."""
