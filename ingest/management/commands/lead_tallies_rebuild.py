"""Recount the lead tallies from the live leads (or only report where they drifted)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import project_ids as all_project_ids
from ingest.lead_tallies import lead_tallies_drift, lead_tallies_rebuild


class Command(BaseCommand):
    help = (
        "Recount the per-project lead tallies (live leads per stage, their score total) of one project "
        "(--project) or of every project. Safe while workers score; run it once after deploying code that "
        "adds tally maintenance, or after a write that bypassed it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="Only this project id.")
        parser.add_argument("--check", action="store_true", help="Report drift, change nothing; exit 1 on drift.")

    def handle(self, *args, project: int | None = None, check: bool = False, **options):
        if not check:
            recounted = lead_tallies_rebuild(project_id=project)
            self.stdout.write(f"{recounted} projects recounted")
            return
        project_ids = [project] if project is not None else all_project_ids()
        drifted = 0
        for project_id in project_ids:
            for column, n in lead_tallies_drift(project_id=project_id).items():
                drifted += 1
                self.stdout.write(f"project {project_id}: {column}: {n:+d}")
        if drifted:
            raise CommandError(f"{drifted} lead tallies drifted: run lead_tallies_rebuild")
        self.stdout.write("lead tallies exact")
