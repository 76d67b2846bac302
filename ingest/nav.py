from core.nav import nav

nav.register(label="Events", url_name="ingest:event_list", order=20)
nav.register(label="Simulator", url_name="ingest:event_simulate", order=60)
nav.register(label="Integrations", url_name="ingest:integration_list", order=70)
