"""Storage: volume types, volumes, snapshots, attachments, storage backends."""
