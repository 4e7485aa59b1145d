"""The chaos drills: scenarios as data, real faults, the drill that observes them, and the one judge of its record."""
