from core.nav import nav

nav.register(label="Overview", url_name="project_overview", order=10)
nav.register(label="System", url_name="system_status", order=80)
