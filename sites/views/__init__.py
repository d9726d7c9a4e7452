"""The panel's pages that show sites, or sites beside other apps' rows: the site
pages (``sites``), the dashboard (``dashboard``), the backup pages that act on a site
(``backups``: back up now, the RPO ledger and badge), the restore wizard and switch
(``restore``), drift & orphans (``reconcile``) and the tenant pages, which count each
tenant's live sites (``tenants``). ``sites/urls.py`` routes them."""
