"""The Lambda side of skyclass: API routes, the S3-event handler, the scaling handler
and the web page. Chalice packages it through the ``vendor/chalice_app`` symlink."""
