"""The sections of Evidence, one module each: the record (every number declared once, with its source)
and its pure deriver. `diagnose.derive.evidence` assembles them; rules read them."""
