"""Glance's ``image.update`` notification, sent after each tag change.

Glance sends it for every tag PUT and DELETE that saves (a no-op PUT too;
imagetags, which writes nothing then, sends nothing) with the payload of
its ``format_image_notification``, an empty context and ``[DEFAULT]
default_publisher_id``, through oslo.messaging as
``[oslo_messaging_notifications]`` configures it, unless
``[DEFAULT] disabled_notifications`` names ``image.update`` or ``image``.
In filter mode those options come from Glance's own file.
"""
from oslo_config import cfg

EVENT = 'image.update'


def make(conf):
    """``notify(image, properties)``, or None where nothing is to be sent:
    no notification driver (oslo.messaging's default), or the event
    disabled. oslo.messaging is imported only then: it loads eventlet."""
    if {EVENT, EVENT.split('.')[0]} & set(
            conf.disabled_notifications) or not _drivers(conf):
        return None
    import oslo_messaging
    notifier = oslo_messaging.Notifier(
        oslo_messaging.get_notification_transport(conf),
        publisher_id=conf.default_publisher_id)
    if not notifier.is_enabled():
        return None

    def notify(image, properties):
        notifier.info({}, EVENT, payload(image, properties))
    return notify


def payload(image, properties):
    """Glance's ``format_image_notification`` of the image as the change
    left it (a driver's image dict, with ``tags``)."""
    return {
        'id': image['id'], 'name': image['name'], 'status': image['status'],
        'created_at': _isotime(image['created_at']),
        'updated_at': _isotime(image['updated_at']),
        'min_disk': image['min_disk'], 'min_ram': image['min_ram'],
        'protected': image['protected'], 'checksum': image['checksum'],
        'owner': image['owner'], 'disk_format': image['disk_format'],
        'container_format': image['container_format'],
        'size': image['size'], 'virtual_size': image['virtual_size'],
        'is_public': image['visibility'] == 'public',
        'visibility': image['visibility'], 'properties': dict(properties),
        'tags': list(image['tags']), 'deleted': False, 'deleted_at': None,
    }


def _drivers(conf):
    """``[oslo_messaging_notifications] driver`` from conf's files (and
    environment), read as oslo.messaging declares it, without it."""
    probe = cfg.ConfigOpts()
    probe.register_opt(cfg.MultiStrOpt(
        'driver', default=[], deprecated_name='notification_driver',
        deprecated_group='DEFAULT'), group='oslo_messaging_notifications')
    probe([], default_config_files=conf.default_config_files,
          default_config_dirs=conf.default_config_dirs)
    return [d for d in probe.oslo_messaging_notifications.driver
            if d != 'noop']


def _isotime(when):
    """oslo.utils' ``isotime`` of a naive UTC datetime, as Glance sends."""
    return when.strftime('%Y-%m-%dT%H:%M:%SZ') if when else None
