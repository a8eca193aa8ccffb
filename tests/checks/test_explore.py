"""``checks.reveal``: the self-assessment of explore exercises, as plain text and as HTML."""
import pytest
from IPython.core.interactiveshell import InteractiveShell

from vae_course import checks
from vae_course.checks.explore import reveal_html, reveal_text

OBS = "Samples get sharper as sigma shrinks, but fewer look like digits (KL < 10 nats)."


def test_plain_text_outside_ipython_shows_prompt_observation_and_points(capsys):
    assert checks.reveal(OBS, prompt="Which sigma is best?", points=["reconstructions", "samples"]) is None
    out = capsys.readouterr().out
    assert out.index("✍️ Which sigma is best?") < out.index("Expected observation") < out.index("sharper")
    assert "KL < 10 nats" in out and "  - reconstructions\n  - samples" in out


def test_default_prompt_and_a_single_point_given_as_a_string(capsys):
    checks.reveal(OBS, points="the KL")
    out = capsys.readouterr().out
    assert "Write down what you observed" in out and "  - the KL" in out and "  - t\n" not in out


def test_html_folds_the_observation_and_escapes_it():
    page = reveal_html(OBS, "Which <sigma>?", ["a & b"])
    order = [page.index(s) for s in ("Which &lt;sigma&gt;?", "<details>", "sharper", "</details>")]
    assert order == sorted(order)
    assert "<details open" not in page  # closed until the learner clicks
    assert "KL &lt; 10 nats" in page and "<li>a &amp; b</li>" in page
    assert "<ul>" not in reveal_html(OBS)  # no checklist without points


def test_under_ipython_it_publishes_html_with_a_text_fallback(capsys):
    shell = InteractiveShell.instance()
    published = []
    real = shell.display_pub.publish
    shell.display_pub.publish = lambda data, **kw: published.append(data)  # record what a front end receives
    try:
        assert checks.reveal(OBS, prompt="Look at the samples.") is None
    finally:
        shell.display_pub.publish = real
        InteractiveShell.clear_instance()
    assert len(published) == 1
    assert published[0]["text/plain"] == reveal_text(OBS, "Look at the samples.")
    assert published[0]["text/html"] == reveal_html(OBS, "Look at the samples.")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_an_empty_observation_is_an_authoring_error(bad):
    with pytest.raises(TypeError, match="observation"):
        checks.reveal(bad)
