from core.nav import nav

nav.register(label="Predictions", url_name="predictions:report", order=48)
