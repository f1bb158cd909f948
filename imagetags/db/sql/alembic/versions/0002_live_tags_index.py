"""An index on the live tags of an image.

Glance soft-deletes tag rows and keeps them until ``glance-manage db
purge``; without this index every read, guard and count of an image's live
tags walks all the rows the image ever had. The README gives the same
statement for a Glance database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_image_tags_image_id_deleted_value', 'image_tags',
                    ['image_id', 'deleted', 'value'])
