"""Key pairs from the dashboard: generate (private key shown once), import, delete."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

INVALID_PUBLIC_KEY = "ssh-ed25519 this-is-not-base64 broken@example"


def test_generate_keypair_shows_private_key_once(login, cloud, readme_screenshot):
    page = login("alice")
    page.get_by_role("link", name="Key pairs").click()
    expect(page.get_by_role("heading", name="Key pairs", exact=True)).to_be_visible()
    form = page.locator("#keypair-form")
    form.get_by_label("Name").fill("deploy")
    expect(form.get_by_label("Public key")).to_have_value("")
    form.get_by_role("button", name="Create key pair").click()

    private_key = page.locator("#private-key")
    expect(private_key).to_be_visible()
    expect(private_key).to_contain_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    expect(private_key).to_contain_text("-----END OPENSSH PRIVATE KEY-----")
    expect(page.locator("#private-key-once")).to_contain_text("Save the private key of deploy now")
    expect(page.get_by_role("link", name="Download deploy.pem")).to_be_visible()
    expect(page.locator(".alert-success")).to_contain_text("Key pair deploy created.")
    row = page.locator('tr[data-name="deploy"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("SHA256:")
    expect(form.get_by_label("Name")).to_have_value("")  # the form is reset for the next key
    readme_screenshot(page, "keypairs")

    # Reloading re-sends the form: the name is taken now, so no second key and no private key.
    page.reload()
    expect(page.locator("#keypair-form .form-error")).to_contain_text("already have a key pair named")
    expect(page.locator("#private-key")).to_have_count(0)
    expect(page.locator("tr[data-name]")).to_have_count(1)

    page.get_by_role("link", name="Overview").click()
    expect(page.locator('#quota-usage [data-resource="key_pairs"] .quota-figures')).to_have_text("1 of 100")

    # Coming back to the page (a fresh GET), the private key is gone for good.
    page.get_by_role("link", name="Key pairs").click()
    expect(page.locator('tr[data-name="deploy"]')).to_be_visible()
    expect(page.locator("#private-key")).to_have_count(0)
    expect(page.get_by_text("BEGIN OPENSSH PRIVATE KEY")).to_have_count(0)


def test_importing_an_invalid_public_key_shows_the_error(login, cloud):
    page = login("alice")
    page.goto("/dashboard/identity/keypairs/")
    rows = page.locator("tr[data-name]")
    expect(rows).to_have_count(0)
    form = page.locator("#keypair-form")
    form.get_by_label("Name").fill("broken")
    form.get_by_label("Public key").fill(INVALID_PUBLIC_KEY)
    form.get_by_role("button", name="Create key pair").click()

    expect(page.locator("#keypair-form .form-error")).to_contain_text("not a valid OpenSSH public key")
    expect(form.get_by_label("Name")).to_have_value("broken")  # the input is kept for correcting
    expect(form.get_by_label("Public key")).to_have_value(INVALID_PUBLIC_KEY)
    expect(page.locator("#private-key")).to_have_count(0)
    expect(page.locator(".alert-success")).to_have_count(0)
    expect(rows).to_have_count(0)
    page.goto("/dashboard/overview/")
    expect(page.locator('#quota-usage [data-resource="key_pairs"] .quota-figures')).to_have_text("0 of 100")


def test_delete_keypair_after_confirming(login, cloud):
    from tests.factories import KeyPairFactory

    KeyPairFactory(user=cloud.member, name="old-key")
    KeyPairFactory(user=cloud.member, name="keep-me")
    page = login("alice")
    page.goto("/dashboard/identity/keypairs/")
    row = page.locator('tr[data-name="old-key"]')
    expect(row).to_be_visible()

    # Dismissing the confirm dialog keeps the key.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Delete").click()
    page.wait_for_load_state()
    expect(row).to_be_visible()

    messages = []

    def accept(dialog):
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    row.get_by_role("button", name="Delete").click()

    expect(page.locator(".alert-success")).to_contain_text("Key pair old-key deleted.")
    expect(page.locator('tr[data-name="old-key"]')).to_have_count(0)
    expect(page.locator('tr[data-name="keep-me"]')).to_be_visible()
    assert messages == ["Delete key pair old-key?"]
