"""In-store presence: pseudonymous device ids, and the engine that turns sightings into visits and counts."""
