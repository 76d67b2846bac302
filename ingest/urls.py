from django.urls import path

from . import views

app_name = "ingest"
urlpatterns = [
    path("sdk/ls.js", views.sdk_script_view, name="sdk_script"),
    path("events/", views.event_list_view, name="event_list"),
    path("simulator/", views.event_simulate_view, name="event_simulate"),
    path("integrations/", views.integration_list_view, name="integration_list"),
    path("integrations/rotate-key/", views.write_key_rotate_view, name="write_key_rotate"),
    path("integrations/test-event/", views.test_event_send_view, name="test_event_send"),
]
