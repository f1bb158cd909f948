from alembic import context

from imagetags.db.sql import migration
from imagetags.db.sql import models

context.configure(connection=context.config.attributes['connection'],
                  target_metadata=models.metadata,
                  version_table=migration.VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
