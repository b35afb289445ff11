"""Storage implementations of the write side's interfaces (commands/frame_store.py), chosen by
the composition root: the only code besides projections/ that speaks SQL to the event store."""
