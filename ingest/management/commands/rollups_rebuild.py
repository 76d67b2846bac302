"""Recount the event rollups from the processed events (or only report where they drifted)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import project_ids as all_project_ids
from ingest.rollups import rollups_drift, rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recount the per-day and per-name event rollups of one project (--project) or of every project. "
        "Safe while workers score; run it once after deploying code that adds rollup maintenance."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="Only this project id.")
        parser.add_argument("--check", action="store_true", help="Report drift, change nothing; exit 1 on drift.")

    def handle(self, *args, project: int | None = None, check: bool = False, **options):
        if not check:
            written = rollups_rebuild(project_id=project)
            self.stdout.write(f"{written} rollup rows written")
            return
        project_ids = [project] if project is not None else all_project_ids()
        drifted = 0
        for project_id in project_ids:
            for key, n in rollups_drift(project_id=project_id).items():
                drifted += 1
                self.stdout.write(f"project {project_id}: {key}: {n:+d}")
        if drifted:
            raise CommandError(f"{drifted} rollup counts drifted: run rollups_rebuild")
        self.stdout.write("rollups exact")
