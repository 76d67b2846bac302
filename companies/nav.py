from core.nav import nav

nav.register(label="Companies", url_name="companies:company_list", order=35)
