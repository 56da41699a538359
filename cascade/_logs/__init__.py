"""Reading escalation logs back: tolerant line reading and resuming a batch from an earlier run."""
