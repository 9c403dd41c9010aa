"""CDS Hooks 2.0: decision support from the pathway's engine for EHRs (docs/interop.md, "CDS Hooks")."""
