"""The automation modes: each mode's context and the before-hook record, deferred schedules,
signed sinks, and the dry run of a mode rule."""
