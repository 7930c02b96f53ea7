"""The KPI board: counts about each union for its officers and, with the small-group rule, for its federation."""
