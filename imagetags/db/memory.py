"""In-memory driver: Glance's visibility rules and quota, one lock."""
import datetime
import threading

from imagetags import db


class MemoryDriver(db.Driver):
    def __init__(self, conf):
        super().__init__(conf)
        self._lock = threading.Lock()
        self._images = {}    # id -> image dict
        self._members = {}   # id -> {project: status}
        self._tags = {}      # id -> list of tags, oldest first

    def _get(self, ctx, image_id, check):
        image = self._images.get(image_id)
        if image is None:
            raise db.ImageNotFound(image_id)
        image = db.visible(image, ctx,
                           lambda: ctx.project_id in self._members[image_id])
        check(image)
        return self._tags[image_id]

    def _touch(self, image_id):
        """The change's ``updated_at``; the image as it left it."""
        self._images[image_id]['updated_at'] = _now()
        return dict(self._images[image_id], tags=list(self._tags[image_id]))

    def image_properties(self, image_id):
        return {}

    def add_tag(self, ctx, image_id, tag, quota, check):
        with self._lock:
            tags = self._get(ctx, image_id, check)
            if tag in tags:
                return False
            if 0 <= quota < len(tags) + 1:
                raise db.TagLimitExceeded(len(tags) + 1, quota)
            tags.append(tag)
            return self._touch(image_id)

    def delete_tag(self, ctx, image_id, tag, check):
        with self._lock:
            tags = self._get(ctx, image_id, check)
            if tag not in tags:
                raise db.TagNotFound(tag)
            tags.remove(tag)
            return self._touch(image_id)

    def show_image(self, image_id):
        with self._lock:
            if image_id not in self._images:
                return None
            return dict(self._images[image_id],
                        tags=list(self._tags[image_id]))

    def create_image(self, image_id, owner, visibility='shared',
                     status='active', name=None, protected=False,
                     members=()):
        now = _now()
        with self._lock:
            self._images[image_id] = dict(
                id=image_id, name=name, status=status, visibility=visibility,
                protected=protected, os_hidden=False, owner=owner,
                min_disk=0, min_ram=0, disk_format=None,
                container_format=None, size=None, virtual_size=None,
                checksum=None, created_at=now, updated_at=now)
            self._members[image_id] = dict(members)
            self._tags[image_id] = []

    def delete_image(self, image_id):
        with self._lock:
            self._images.pop(image_id, None)
            self._tags.pop(image_id, None)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
