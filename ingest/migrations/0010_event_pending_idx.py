# Written by hand: the index is built CONCURRENTLY on PostgreSQL, so that ingest is not held back meanwhile.

from django.db import migrations, models

TABLE = "ingest_event"
NEW = ("event_pending_idx", ("lead_id", "timestamp", "event_id"))
OLD = ("event_unprocessed_idx", ("received_at",))


def _swap(schema_editor, add, drop):
    quote = schema_editor.quote_name
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    name, columns = add
    schema_editor.execute(
        f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)} ON {quote(TABLE)}"
        f" ({', '.join(quote(column) for column in columns)}) WHERE {quote('processed_at')} IS NULL"
    )
    schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {quote(drop[0])}")


def forwards(apps, schema_editor):
    _swap(schema_editor, NEW, OLD)


def backwards(apps, schema_editor):
    _swap(schema_editor, OLD, NEW)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('ingest', '0009_event_lean_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.RemoveIndex(model_name='event', name='event_unprocessed_idx'),
                migrations.AddIndex(
                    model_name='event',
                    index=models.Index(condition=models.Q(('processed_at__isnull', True)), fields=['lead', 'timestamp', 'event_id'], name='event_pending_idx'),
                ),
            ],
        ),
    ]
