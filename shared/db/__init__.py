"""Database: engine/session, SQLModel tables, the unit of work (the only commit), outbox, migrations."""
