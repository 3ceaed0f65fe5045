"""gateway/delivery/providers.py: what the renderers are given from the configuration."""
from __future__ import annotations

from gateway.config import from_env
from gateway.delivery import providers
from messages import sms


def test_the_latin_sms_signature_is_read_from_the_environment():
    assert from_env({})["SMS_SIGNATURE_LATIN"] == ""
    assert from_env({"SMS_SIGNATURE_LATIN": "Qinzhou Gov"})["SMS_SIGNATURE_LATIN"] == "Qinzhou Gov"


def test_english_sms_get_the_configured_latin_signature(make_app, database_url):
    app = make_app(database_url, SMS_SIGNATURE="钦州发布", SMS_SIGNATURE_LATIN="Qinzhou Gov")

    context = providers.render_context(app)

    assert (context.sms_signature, context.sms_signature_latin) == ("钦州发布", "Qinzhou Gov")
    assert sms.signature("en", context) == "[Qinzhou Gov] "
    assert sms.signature("zh", context) == "【钦州发布】"
    unset = providers.render_context(make_app(database_url, SMS_SIGNATURE="钦州发布"))
    assert sms.signature("en", unset) == "【钦州发布】"
