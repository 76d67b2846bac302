from core.nav import nav

nav.register(label="Automations", url_name="automations:automation_list", order=50)
