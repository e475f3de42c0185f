"""Chalice's entry point (it must live at the project root): builds the app and
registers the blueprints of chalice_app/. No logic here."""

from chalice import Chalice

from chalice_app import api, auth, bulk, events, scaling, tasks

app = Chalice(app_name="skyclass")
api.configure(app)
app.register_blueprint(auth.bp)
app.register_blueprint(api.bp)
app.register_blueprint(bulk.bp)
app.register_blueprint(events.bp)
app.register_blueprint(scaling.bp)
app.register_blueprint(tasks.bp)
