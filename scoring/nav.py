from core.nav import nav

nav.register(label="Leads", url_name="scoring:lead_list", order=30)
nav.register(label="Rules", url_name="scoring:rule_list", order=40)
nav.register(label="Models", url_name="scoring:scoring_model_list", order=45)
