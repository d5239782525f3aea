"""The lab: compare activations on real data (data → models → train → store → report)."""
