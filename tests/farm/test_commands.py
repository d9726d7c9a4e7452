from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.models import Schedule

from farm.models import User

pytestmark = pytest.mark.django_db


def test_create_operator_prints_a_login_once_and_only_when_none_exists():
    out = StringIO()
    call_command("create_operator", "Admin@Example.test", "--if-none-exists", stdout=out)
    user = User.objects.get()
    assert user.email == "admin@example.test" and user.is_staff and user.is_superuser
    password = out.getvalue().split("admin@example.test / ")[1].split()[0]
    assert user.check_password(password)

    again = StringIO()
    call_command("create_operator", "other@example.test", "--if-none-exists", stdout=again)
    assert "already exists" in again.getvalue()
    assert User.objects.count() == 1


def test_create_operator_refuses_a_non_email():
    with pytest.raises(CommandError):
        call_command("create_operator", "not-an-email")


def test_ensure_schedules_is_idempotent():
    call_command("ensure_schedules", stdout=StringIO())
    count = Schedule.objects.count()
    out = StringIO()
    call_command("ensure_schedules", stdout=out)
    assert Schedule.objects.count() == count
    assert "up to date" in out.getvalue()
