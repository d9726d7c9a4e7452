"""The panel's pages that show sites, or sites beside other apps' rows: the site
pages (``sites``), the dashboard (``dashboard``) and the tenant pages, which count
each tenant's live sites (``tenants``). ``sites/urls.py`` routes them."""
