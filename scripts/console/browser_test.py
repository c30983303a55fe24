#!/usr/bin/env python3
"""The review console in a real browser (issue 14): headless Chromium driven by selenium.

Run by Tests/CustosServerTests/ConsoleBrowserTests.swift, which starts `custos serve`, seeds it through the API and
passes a JSON file (argv[1]) with:
  base        http://127.0.0.1:<port>
  serve_pid   the running server's pid (stopped here for the tamper step)
  serve_argv  how to start it again on the same data directory
  database    the SQLite file of that data directory
  tokens      {"reader_a", "reader_b", "auditor", "admin"}
  appraisals  {"a_allowed", "a_denied", "b_allowed"}
  launches    {"allowed", "denied"}: SEV-ES launches of tenant A
  failing     text the denied appraisal's first failing condition must contain
  screenshots directory for the PNGs

Prints one JSON object {"passed": [...], "failed": [{"check", "why"}]} and exits 0 only if nothing failed. The server
this script starts is stopped when it ends.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")


class Run:
    def __init__(self, config):
        self.config = config
        self.base = config["base"]
        self.passed = []
        self.failed = []
        self.visited = set()
        self.server = None
        os.makedirs(config["screenshots"], exist_ok=True)
        options = webdriver.ChromeOptions()
        options.binary_location = config.get("chromium", "/usr/bin/chromium")
        for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1200,900", "--user-data-dir=" + config["profile"]]:
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(config.get("chromedriver", "/usr/bin/chromedriver")), options=options)
        self.driver.set_page_load_timeout(30)

    # MARK: helpers

    def check(self, name, condition, why=""):
        if condition:
            self.passed.append(name)
        else:
            self.failed.append({"check": name, "why": why})
        return condition

    def open(self, path):
        self.driver.get(self.base + path)
        self.visited.add(path)
        self.no_alert(path)

    def no_alert(self, where):
        try:
            alert = self.driver.switch_to.alert
            text = alert.text
            alert.dismiss()
            self.check("no alert on " + where, False, "an alert opened: %r" % text)
        except NoAlertPresentException:
            pass

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(self.config["screenshots"], "console-%s.png" % name))

    def text(self, element_id):
        elements = self.driver.find_elements(By.ID, element_id)
        return elements[0].text if elements else ""

    def wait_text(self, element_id, predicate, timeout=15):
        try:
            WebDriverWait(self.driver, timeout).until(lambda d: predicate(self.text(element_id)))
            return True
        except TimeoutException:
            return False

    def red_warning(self, name, prefix):
        """Opens the audit list and checks that its consistency line starts with `prefix` and is red."""
        self.open("/ui/audit")
        self.check(name, self.wait_text("consistency", lambda t: t.startswith(prefix)), self.text("consistency"))
        self.check(name + " (red)", "bad" in self.driver.find_element(By.ID, "consistency").get_attribute("class"))

    def sign_in(self, token):
        self.open("/ui/")
        self.driver.find_element(By.ID, "token").send_keys(token)
        self.driver.find_element(By.ID, "sign-in").click()
        WebDriverWait(self.driver, 10).until(lambda d: "/ui/appraisals" in d.current_url)

    def sign_out(self):
        self.driver.find_element(By.ID, "sign-out").click()
        WebDriverWait(self.driver, 10).until(lambda d: d.find_elements(By.ID, "token"))

    def injected(self):
        """Elements the markup in the claims would have made, and scripts other than the console's own."""
        return self.driver.execute_script(
            "return {imgs: document.querySelectorAll('img').length,"
            " scripts: Array.from(document.scripts).map(s => s.src || 'inline')}")

    def csp_everywhere(self):
        cookie = self.driver.get_cookie("custos_ui")
        for path in sorted(self.visited):
            request = urllib.request.Request(self.base + path)
            if cookie:
                request.add_header("Cookie", "custos_ui=" + cookie["value"])
            try:
                response = urllib.request.urlopen(request, timeout=10)
                headers = response.headers
            except urllib.error.HTTPError as error:
                headers = error.headers
            self.check("CSP on " + path, headers.get("Content-Security-Policy") == CSP,
                       "got %r" % headers.get("Content-Security-Policy"))
            self.check("nosniff on " + path, headers.get("X-Content-Type-Options") == "nosniff")

    # MARK: the server

    def healthy(self):
        try:
            return urllib.request.urlopen(self.base + "/healthz", timeout=2).status == 200
        except Exception:
            return False

    def stop_seeded_server(self):
        os.kill(self.config["serve_pid"], signal.SIGTERM)
        for _ in range(200):
            if not self.healthy():
                break
            time.sleep(0.05)
        # The data-directory lock is released when the process is gone: retry the start below until it holds.
        time.sleep(0.5)

    def start_server(self):
        for _ in range(20):
            self.server = subprocess.Popen(self.config["serve_argv"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if self.healthy():
                    return True
                if self.server.poll() is not None:
                    break
                time.sleep(0.1)
            if self.server.poll() is None:
                self.server.terminate()
            time.sleep(0.5)
        return False

    def tamper(self, seq):
        """Changes one stored entry's bytes (not its leaf hash) while the server is stopped."""
        database = sqlite3.connect(self.config["database"])
        try:
            database.execute("DROP TRIGGER IF EXISTS audit_entries_no_update")
            (body,) = database.execute("SELECT body FROM audit_entries WHERE seq = ?", (seq,)).fetchone()
            raw = body if isinstance(body, bytes) else body.encode()
            changed = raw.replace(b'"contraindicated"', b'"affirming"', 1)
            if changed == raw:
                changed = raw.replace(b'"tenant-a"', b'"tenant-z"', 1)
            database.execute("UPDATE audit_entries SET body = ? WHERE seq = ?",
                             (changed if isinstance(body, bytes) else changed.decode(), seq))
            database.commit()
            return changed != raw
        finally:
            database.close()

    # MARK: the scenario

    def run(self):
        ids = self.config["appraisals"]
        tokens = self.config["tokens"]

        # Tenant A: its own appraisals, not B's.
        self.sign_in(tokens["reader_a"])
        listing = self.driver.page_source
        self.check("tenant A sees its allowed appraisal", ids["a_allowed"] in listing)
        self.check("tenant A sees its denied appraisal", ids["a_denied"] in listing)
        self.check("tenant A does not see tenant B's appraisal", ids["b_allowed"] not in listing)
        self.shot("appraisals")
        self.open("/ui/appraisals/" + ids["b_allowed"])
        self.check("tenant B's appraisal is not found for tenant A", "not found" in self.text("error").lower()
                   or "not found" in self.driver.title.lower(), self.driver.title)

        # The denied appraisal: the failing condition in the trace.
        self.open("/ui/appraisals/" + ids["a_denied"])
        self.check("denied appraisal shows its verdict", self.text("verdict") == "contraindicated", self.text("verdict"))
        failure = self.text("first-failure")
        self.check("the first failing condition is shown", self.config["failing"] in failure, failure)
        highlighted = self.driver.find_elements(By.CSS_SELECTOR, "#trace tr.first-failure")
        self.check("the first failing row is highlighted", len(highlighted) == 1)
        self.shot("appraisal")
        self.driver.execute_script("document.getElementById('trust-vector').scrollIntoView()")
        self.shot("appraisal-trace")
        entry_link = self.driver.find_element(By.ID, "audit-link")
        denied_seq = int(entry_link.text.lstrip("#"))

        # Markup from init-data is text and runs nothing.
        self.open("/ui/appraisals/" + ids["a_allowed"])
        claims = self.text("claims")
        self.check("the <script> claim is shown as text", "<script>alert(1)</script>" in claims)
        self.check("the <img onerror> claim is shown as text", '"><img src=x onerror=alert(1)>' in claims)
        injected = self.injected()
        self.check("no injected element", injected["imgs"] == 0, repr(injected))
        self.check("no script but the console's",
                   all(src == self.base + "/ui/static/console.js" for src in injected["scripts"]), repr(injected))
        time.sleep(0.5)
        self.no_alert("the init-data appraisal")

        # The audit entry: proven in the browser; the log only grew since the last visit.
        self.open("/ui/audit/%d" % denied_seq)
        verified = self.wait_text("proof-status", lambda t: t.startswith("Inclusion proof verified in your browser"))
        self.check("the inclusion proof is verified in the browser", verified, self.text("proof-status"))
        self.check("the first visit remembers the checkpoint",
                   self.wait_text("consistency", lambda t: t.startswith("First visit")), self.text("consistency"))
        self.shot("audit-entry")
        # The log grows (a policy reload is audited); the audit list proves the growth from the remembered checkpoint.
        reload = urllib.request.Request(self.base + "/v1/policies:reload", method="POST",
                                        headers={"Authorization": "Bearer " + tokens["admin"]})
        self.check("the log grew", urllib.request.urlopen(reload, timeout=10).status == 200)
        self.open("/ui/launches")
        launches = self.config["launches"]
        steps = {}
        for card in self.driver.find_elements(By.CSS_SELECTOR, "section.launch"):
            launch_id = card.find_element(By.TAG_NAME, "h2").text
            steps[launch_id] = [row.find_elements(By.TAG_NAME, "td")[0].text
                                for row in card.find_elements(By.CSS_SELECTOR, "table.steps tbody tr")]
        self.check("the allowed launch shows each step",
                   steps.get(launches["allowed"]) == ["created", "measured", "allowed", "injected"], repr(steps))
        self.check("the denied launch shows its refusal",
                   steps.get(launches["denied"]) == ["created", "measured", "denied"], repr(steps))
        self.shot("launches")
        self.open("/ui/overview")
        self.check("the overview has its chart", len(self.driver.find_elements(By.CSS_SELECTOR, "svg#chart rect.bar")) > 0)
        self.shot("overview")
        self.open("/ui/audit")
        self.check("the audit list checks consistency with the last visit",
                   self.wait_text("consistency", lambda t: t.startswith("The log only grew since your last visit")),
                   self.text("consistency"))
        # A remembered checkpoint the current log does not extend (another root at a smaller size): a red warning,
        # and the remembered checkpoint is kept.
        storage_key, genuine = self.driver.execute_script(
            "const key = Object.keys(localStorage).find(k => k.startsWith('custos.checkpoint.'));"
            "const genuine = localStorage.getItem(key); const last = JSON.parse(genuine);"
            "const forged = {size: last.size - 1, root: btoa(String.fromCharCode(...new Uint8Array(32)))};"
            "localStorage.setItem(key, JSON.stringify(forged)); return [key, genuine];")
        self.red_warning("a rewritten log is reported in red", "Warning: the log is not consistent")
        remembered = self.driver.execute_script("return JSON.parse(localStorage.getItem(arguments[0])).root", storage_key)
        self.check("the remembered checkpoint is not replaced", remembered == "A" * 43 + "=", repr(remembered))
        self.shot("rewritten")
        self.driver.execute_script("localStorage.setItem(arguments[0], arguments[1])", storage_key, genuine)
        # The log key this browser saw is remembered; another one is reported in red and not learned.
        remembered_key = self.driver.execute_script("return JSON.parse(localStorage.getItem(arguments[0])).key", storage_key)
        with urllib.request.urlopen(self.base + "/.well-known/attestation-service", timeout=10) as response:
            published = json.load(response)["audit"]["verifier_key"]
        self.check("the log key is remembered", remembered_key == published, repr((remembered_key, published)))
        other_key = self.driver.execute_script(
            "const key = arguments[0]; const last = JSON.parse(localStorage.getItem(key));"
            "last.key = last.key.split('+').slice(0, 2).join('+') + '+AQ' + 'A'.repeat(41) + '=';"
            "localStorage.setItem(key, JSON.stringify(last)); return last.key;", storage_key)
        self.red_warning("a changed log key is reported in red", "Warning: the log key changed since your last visit")
        kept = self.driver.execute_script("return JSON.parse(localStorage.getItem(arguments[0])).key", storage_key)
        self.check("the remembered key is not replaced", kept == other_key, repr(kept))
        self.shot("key-changed")
        self.driver.execute_script("localStorage.setItem(arguments[0], arguments[1])", storage_key, genuine)
        self.csp_everywhere()

        # Sign out, and be refused.
        self.sign_out()
        self.open("/ui/appraisals")
        self.check("signed out: the console refuses", self.driver.current_url.rstrip("/").endswith("/ui")
                   and self.driver.find_elements(By.ID, "token"), self.driver.current_url)

        # The auditor filters by tenant.
        self.sign_in(tokens["auditor"])
        self.open("/ui/audit")
        tenants = {cell.text for cell in self.driver.find_elements(By.CSS_SELECTOR, "#entries td.tenant")}
        self.check("the auditor sees every tenant", {"tenant-a", "tenant-b"} <= tenants, repr(tenants))
        field = self.driver.find_element(By.ID, "filter-tenant")
        field.clear()
        field.send_keys("tenant-b")
        self.driver.find_element(By.ID, "filter").click()
        WebDriverWait(self.driver, 10).until(lambda d: "tenant=tenant-b" in d.current_url)
        self.visited.add("/ui/audit?tenant=tenant-b")
        tenants = {cell.text for cell in self.driver.find_elements(By.CSS_SELECTOR, "#entries td.tenant")}
        self.check("the auditor's tenant filter", tenants == {"tenant-b"}, repr(tenants))
        self.shot("audit")
        self.csp_everywhere()
        self.sign_out()

        # Tamper with the log while the service is stopped: the console reports it.
        self.stop_seeded_server()
        self.check("a stored entry was changed", self.tamper(denied_seq))
        self.check("the service starts again", self.start_server())
        self.sign_in(tokens["reader_a"])
        self.open("/ui/audit/%d" % denied_seq)
        failed = self.wait_text("proof-status", lambda t: t.startswith("Verification FAILED"))
        self.check("the browser reports the changed entry", failed, self.text("proof-status"))
        self.check("the server reports the changed entry", "log was changed" in self.text("server-check"))
        self.shot("tampered")
        self.csp_everywhere()

    def close(self):
        try:
            self.driver.quit()
        finally:
            if self.server and self.server.poll() is None:
                self.server.terminate()
                try:
                    self.server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.server.kill()


def main():
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    run = Run(config)
    try:
        run.run()
    except Exception as error:  # a step that could not even run is a failure, with its reason
        run.failed.append({"check": "the scenario ran to the end", "why": "%s: %s" % (type(error).__name__, error)})
    finally:
        run.close()
    print(json.dumps({"passed": run.passed, "failed": run.failed}))
    sys.exit(1 if run.failed else 0)


if __name__ == "__main__":
    main()
