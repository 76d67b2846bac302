"""The bottom layer: what every app builds on, importing none of them.

Errors and their one JSON shape, strict serializer fields, the JSON body parser, OpenAPI
machinery, rate limits, logs and metrics, the realtime broadcast, the scoring queue and the
dead-letter store. Apps import from here; nothing here imports an app or the wiring layer
(`leadpulse/`): import-linter checks it (`.importlinter`).
"""
