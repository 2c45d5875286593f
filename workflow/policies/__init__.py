"""Action policies: what an action decides before any I/O — KYC requirements, who a
notification reaches, and what a webhook request may be (timeouts, methods, target, masking)."""
