"""A minimal Django site: one view, no database, no apps."""
