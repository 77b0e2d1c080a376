"""What a run shows besides its images: progress watchers, previews, animations, reports, contact sheets."""
