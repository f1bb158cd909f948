"""The driver interface: the only thing handlers know about storage.

A driver is built once per app as ``Driver(conf)`` and must be safe to call
from many threads. Every driver passes ``imagetags.tests.contract``.

Images are dicts with Glance's columns: ``id``, ``name``, ``status``,
``visibility``, ``protected``, ``os_hidden``, ``owner``, ``min_disk``,
``min_ram``, ``disk_format``, ``container_format``, ``size``,
``virtual_size``, ``checksum``, ``created_at``, ``updated_at``; plus
``member``: the caller's project when the image is ``shared``, the caller does
not own it and the caller's project has a membership row (of any status),
else None.

Visibility follows Glance: an admin context sees every image that is not
deleted; others see images they own, ``public`` and ``community`` ones, images
with no owner, and ``shared`` ones their project is a member of. Anything else,
deleted or unknown is ``ImageNotFound``.

Every call is linearizable: the image is looked up, ``check(image)`` (the
policy decision, which may raise) is called, and the answer and the change
are those of one moment. A change is one transaction serialised against the
other writers of the same image, made only if the tag and the tag count are
still what the decision saw (else the call starts over). Tags are exact
strings: case-sensitive, never trimmed or normalised.
"""
import stevedore


class ImageNotFound(Exception):
    """Unknown, deleted or invisible to the caller."""


class TagNotFound(Exception):
    pass


class TagLimitExceeded(Exception):
    def __init__(self, attempted, maximum):
        super().__init__(attempted, maximum)
        self.attempted = attempted
        self.maximum = maximum


class InvalidTag(Exception):
    """The tag cannot be stored by this backend (e.g. NUL on PostgreSQL)."""


class Unavailable(Exception):
    """The database is down, or stayed busy past the retries."""


class Driver:
    def __init__(self, conf):
        self.conf = conf

    def add_tag(self, ctx, image_id, tag, quota, check):
        """Add ``tag``; return the image as the change left it (its dict,
        with ``tags``, its live tags, and the ``updated_at`` it was given),
        or False (and change nothing) if the tag is already there.

        ``quota`` is the most live tags the image may end with (negative: no
        limit); it applies only when the tag is new, and is never exceeded
        by concurrent calls: ``TagLimitExceeded(count + 1, quota)``. A new
        tag bumps ``images.updated_at``.
        """
        raise NotImplementedError

    def delete_tag(self, ctx, image_id, tag, check):
        """Remove every live copy of ``tag`` and return the image as the
        change left it (as ``add_tag``), or raise ``TagNotFound``."""
        raise NotImplementedError

    def image_properties(self, image_id):
        """The image's extra properties (Glance's ``image_properties``),
        {} where the database keeps none: for its notification."""
        raise NotImplementedError

    def show_image(self, image_id):
        """The live image with its ``tags`` (oldest first), or None.

        No visibility check: for tests and ``imagetags-manage``.
        """
        raise NotImplementedError

    def create_image(self, image_id, owner, visibility='shared',
                     status='active', name=None, protected=False,
                     members=()):
        """Store an image record (tests, ``imagetags-manage image create``).

        ``members`` is a list of (project, status) pairs.
        """
        raise NotImplementedError

    def delete_image(self, image_id):
        """Soft-delete the image and its tags, as Glance does."""
        raise NotImplementedError


def visible(image, ctx, is_member):
    """The image with the caller's ``member`` set, if the caller may see it.

    Glance's rules; ``is_member()``: the caller's project has a membership
    row for the image, asked only of a shared image of another project.
    Raises ImageNotFound otherwise.
    """
    project = ctx.project_id
    member = project if (image['visibility'] == 'shared'
                         and project is not None
                         and image['owner'] != project
                         and is_member()) else None
    if not (image['owner'] is None
            or image['visibility'] in ('public', 'community')
            or (project is not None and image['owner'] == project)
            or member is not None or ctx.is_admin):
        raise ImageNotFound(image['id'])
    return dict(image, member=member)


def load_driver(conf):
    return stevedore.driver.DriverManager(
        'imagetags.driver', conf.imagetags.driver, invoke_on_load=True,
        invoke_args=(conf,)).driver
