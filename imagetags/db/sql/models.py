"""Glance's ``images``, ``image_members`` and ``image_tags`` tables.

Columns, types, indexes and soft-delete semantics are Glance's (alembic head
``2024_1_contract01``), so the driver can run on a live Glance database.
Only what imagetags reads or writes is declared for ``images``.
"""
import sqlalchemy as sa

metadata = sa.MetaData()
# imagetags' own indexes (not Glance's) and the databases that have them:
# migrations 0002 and 0003.
ONLY_ON = {'ix_image_tags_image_id_deleted_value': ('mysql', 'sqlite'),
           'ix_image_tags_live': ('postgresql',)}
_MYSQL = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8'}


def _soft_delete_columns():
    return [sa.Column('created_at', sa.DateTime, nullable=False),
            sa.Column('updated_at', sa.DateTime),
            sa.Column('deleted_at', sa.DateTime),
            sa.Column('deleted', sa.Boolean, nullable=False,
                      default=False)]


images = sa.Table(
    'images', metadata,
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
    sa.Column('min_disk', sa.Integer, nullable=False, default=0),
    sa.Column('min_ram', sa.Integer, nullable=False, default=0),
    sa.Column('owner', sa.String(255)),
    sa.Column('protected', sa.Boolean, nullable=False, default=False,
              server_default=sa.sql.expression.false()),
    sa.Column('os_hidden', sa.Boolean, nullable=False, default=False,
              server_default=sa.sql.expression.false()),
    *_soft_delete_columns(),
    sa.Index('checksum_image_idx', 'checksum'),
    sa.Index('visibility_image_idx', 'visibility'),
    sa.Index('ix_images_deleted', 'deleted'),
    sa.Index('owner_image_idx', 'owner'),
    sa.Index('created_at_image_idx', 'created_at'),
    sa.Index('updated_at_image_idx', 'updated_at'),
    sa.Index('os_hidden_image_idx', 'os_hidden'),
    sa.Index('os_hash_value_image_idx', 'os_hash_value'),
    **_MYSQL)

image_members = sa.Table(
    'image_members', metadata,
    sa.Column('id', sa.Integer, primary_key=True, nullable=False),
    sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id'),
              nullable=False),
    sa.Column('member', sa.String(255), nullable=False),
    sa.Column('can_share', sa.Boolean, nullable=False, default=False),
    sa.Column('status', sa.String(20), nullable=False, default='pending',
              server_default='pending'),
    *_soft_delete_columns(),
    sa.UniqueConstraint('image_id', 'member', 'deleted_at',
                        name='image_members_image_id_member_deleted_at_key'),
    sa.Index('ix_image_members_deleted', 'deleted'),
    sa.Index('ix_image_members_image_id', 'image_id'),
    sa.Index('ix_image_members_image_id_member', 'image_id', 'member'),
    **_MYSQL)

image_tags = sa.Table(
    'image_tags', metadata,
    sa.Column('id', sa.Integer, primary_key=True, nullable=False),
    sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id'),
              nullable=False),
    sa.Column('value', sa.String(255), nullable=False),
    *_soft_delete_columns(),
    sa.Index('ix_image_tags_image_id', 'image_id'),
    sa.Index('ix_image_tags_image_id_tag_value', 'image_id', 'value'),
    # imagetags' own: the live tags of an image (see ONLY_ON).
    sa.Index('ix_image_tags_image_id_deleted_value', 'image_id', 'deleted',
             'value').ddl_if(dialect=ONLY_ON[
                 'ix_image_tags_image_id_deleted_value']),
    sa.Index('ix_image_tags_live', 'image_id', 'value',
             postgresql_where=sa.text('NOT deleted')).ddl_if(
                 dialect=ONLY_ON['ix_image_tags_live']),
    **_MYSQL)
