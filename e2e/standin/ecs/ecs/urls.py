from django.urls import path

from ecs.core import views

urlpatterns = [
    path('', views.index, name='index'),
    path('status.json', views.status, name='status'),
]
