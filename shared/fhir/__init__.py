"""FHIR vocabulary both the intake's FHIR ingestion and the pathway's CDS Hooks service need: the code tables
(`codes`), the CDC opioid guideline's RxNorm value sets and MME factors loaded from files (`terminology`),
MME per day from a dosage (`mme`) and a medication concept's carepath drug class (`medications`).

Pure: no database, no routes, no settings (the folder is passed in)."""
