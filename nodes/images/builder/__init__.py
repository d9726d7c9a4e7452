"""Helpers and build contexts behind :func:`nodes.images.build_images`.

Each ``<role>/`` folder beside this file is the Docker build context of one
farm image; ``base/`` holds files laid into the shared debootstrap rootfs.
The Python modules here are plain Python (no Django) so that the builder can
run from a management command, a test or a script.
"""
