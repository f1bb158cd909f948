"""Glance's images, image_members and image_tags tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

MYSQL = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8'}


def soft_delete():
    return [sa.Column('created_at', sa.DateTime, nullable=False),
            sa.Column('updated_at', sa.DateTime),
            sa.Column('deleted_at', sa.DateTime),
            sa.Column('deleted', sa.Boolean, nullable=False)]


def upgrade():
    op.create_table(
        'images',
        sa.Column('id', sa.String(36), primary_key=True, nullable=False),
        sa.Column('name', sa.String(255)),
        sa.Column('disk_format', sa.String(20)),
        sa.Column('container_format', sa.String(20)),
        sa.Column('size', sa.BigInteger),
        sa.Column('virtual_size', sa.BigInteger),
        sa.Column('status', sa.String(30), nullable=False),
        sa.Column('visibility', sa.Enum('private', 'public', 'shared',
                                        'community', name='image_visibility'),
                  nullable=False, server_default='shared'),
        sa.Column('checksum', sa.String(32)),
        sa.Column('os_hash_algo', sa.String(64)),
        sa.Column('os_hash_value', sa.String(128)),
        sa.Column('min_disk', sa.Integer, nullable=False),
        sa.Column('min_ram', sa.Integer, nullable=False),
        sa.Column('owner', sa.String(255)),
        sa.Column('protected', sa.Boolean, nullable=False,
                  server_default=sa.false()),
        sa.Column('os_hidden', sa.Boolean, nullable=False,
                  server_default=sa.false()),
        *soft_delete(), **MYSQL)
    for name, column in [('checksum_image_idx', 'checksum'),
                         ('visibility_image_idx', 'visibility'),
                         ('ix_images_deleted', 'deleted'),
                         ('owner_image_idx', 'owner'),
                         ('created_at_image_idx', 'created_at'),
                         ('updated_at_image_idx', 'updated_at'),
                         ('os_hidden_image_idx', 'os_hidden'),
                         ('os_hash_value_image_idx', 'os_hash_value')]:
        op.create_index(name, 'images', [column])

    op.create_table(
        'image_members',
        sa.Column('id', sa.Integer, primary_key=True, nullable=False),
        sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id'),
                  nullable=False),
        sa.Column('member', sa.String(255), nullable=False),
        sa.Column('can_share', sa.Boolean, nullable=False),
        sa.Column('status', sa.String(20), nullable=False,
                  server_default='pending'),
        *soft_delete(),
        sa.UniqueConstraint(
            'image_id', 'member', 'deleted_at',
            name='image_members_image_id_member_deleted_at_key'),
        **MYSQL)
    op.create_index('ix_image_members_deleted', 'image_members', ['deleted'])
    op.create_index('ix_image_members_image_id', 'image_members',
                    ['image_id'])
    op.create_index('ix_image_members_image_id_member', 'image_members',
                    ['image_id', 'member'])

    op.create_table(
        'image_tags',
        sa.Column('id', sa.Integer, primary_key=True, nullable=False),
        sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id'),
                  nullable=False),
        sa.Column('value', sa.String(255), nullable=False),
        *soft_delete(), **MYSQL)
    op.create_index('ix_image_tags_image_id', 'image_tags', ['image_id'])
    op.create_index('ix_image_tags_image_id_tag_value', 'image_tags',
                    ['image_id', 'value'])
