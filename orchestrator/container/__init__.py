"""Scripts that run inside a build container (with the image's own python3), never in
`rolecast` itself: they import nothing of Rolecast's."""
