# The companies pipeline's fixtures, for every test module of the package.
from tests.companies.test_services import handed_over, pipeline  # noqa: F401
