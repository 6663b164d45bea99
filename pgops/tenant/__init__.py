"""One tenant's data: found from the schema (every table with a `client_id`, ordered by its
foreign keys), restored to a point in time beside the live cluster, compared and put back in
one transaction, without touching any other tenant.

`catalog` reads the tables, `model` decides (pure), `statements` writes the SQL (pure),
`restore` does the work.
"""
