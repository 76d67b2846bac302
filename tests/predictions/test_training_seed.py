"""`seed_demo` records outcomes from the synthetic ground truth and trains a model, so `make run` shows one."""

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User
from leadpulse.management.commands.seed_demo import DEMO_EMAIL
from predictions.models import LeadPrediction, Outcome, PredictionModel
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_demo_gets_outcomes_from_a_hidden_truth_and_a_trained_model_scoring_every_lead():
    out = StringIO()
    UserFactory()  # another account's data stays out of it

    call_command("seed_demo", leads=20, days=5, outcomes=160, stdout=out)

    project = User.objects.get(email=DEMO_EMAIL).memberships.get().project
    outcomes = Outcome.objects.filter(project=project)
    assert outcomes.count() == 160
    assert {"won", "lost"} == set(outcomes.values_list("outcome", flat=True))
    model = PredictionModel.objects.get(project=project, active=True)
    assert model.train_count + model.test_count == 160
    assert f"Trained v1 on {model.train_count} outcomes" in out.getvalue()
    # the journeys' leads are scored too, not only the ones with outcomes
    assert LeadPrediction.objects.filter(prediction_model=model).count() == project.leads.count() == 180
