"""FHIR R4 in and out for the intake service: Bundles → updates of pathway-spec.md §1, the pathway as a CarePlan.

routes (HTTP) → bundle (parse and validate with fhir.resources R4B) → mapping (resource → update, with the code
tables of codes.py and the value sets of terminology.py; mme.py for the daily dose) → linking (patients and
resource versions) → handlers.record_updates (the same validation, outbox and events as the native routes)."""
