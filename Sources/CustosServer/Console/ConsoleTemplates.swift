// The review console's Mustache templates (hummingbird-project/swift-mustache). `{{name}}` HTML-escapes
// (`<`, `>`, `&`, `"`, `'`): every value from evidence or a request goes through it. `{{{content}}}` appears only in
// the layout, for a page body this file's own templates rendered. No template has an inline script or style: the
// CSP forbids both.

enum ConsoleTemplates {
    static let all: [String: String] = [
        "layout": layout, "signin": signIn, "appraisals": appraisals, "appraisal": appraisal, "launches": launches,
        "audit": audit, "entry": entry, "overview": overview, "error": error,
    ]

    static let layout = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Custos</title>
        <link rel="stylesheet" href="/ui/static/console.css">
        {{#script}}<script src="/ui/static/console.js" defer></script>{{/script}}
        </head>
        <body>
        <header class="top">
        <span class="brand">Custos review console</span>
        {{#signedIn}}
        <nav>
        <a href="/ui/appraisals"{{#navAppraisals}} class="here"{{/navAppraisals}}>Appraisals</a>
        <a href="/ui/launches"{{#navLaunches}} class="here"{{/navLaunches}}>Launches</a>
        <a href="/ui/audit"{{#navAudit}} class="here"{{/navAudit}}>Audit log</a>
        <a href="/ui/overview"{{#navOverview}} class="here"{{/navOverview}}>Overview</a>
        </nav>
        <form method="post" action="/ui/sign-out" class="signout">
        <span class="who" id="who">{{role}}{{#tenant}} · {{tenant}}{{/tenant}}</span>
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button type="submit" id="sign-out">Sign out</button>
        </form>
        {{/signedIn}}
        </header>
        <main>
        {{{content}}}
        </main>
        </body>
        </html>
        """#

    static let signIn = #"""
        <h1>Sign in</h1>
        {{#message}}<p class="alert bad" id="signin-error">{{message}}</p>{{/message}}
        <form method="post" action="/ui/sign-in" class="card signin">
        <label for="token">API token (tenant-reader, tenant-admin or auditor)</label>
        <input type="password" id="token" name="token" autocomplete="off" required>
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button type="submit" id="sign-in">Sign in</button>
        </form>
        <p class="muted">The token is sent once; the console keeps a session for at most an hour (15 minutes idle).</p>
        """#

    static let appraisals = #"""
        <h1>Appraisals{{#tenant}} of {{tenant}}{{/tenant}}</h1>
        <form method="get" action="/ui/appraisals" class="filters">
        {{#serviceWide}}<label>Tenant <input name="tenant" value="{{tenant}}"></label>{{/serviceWide}}
        <label>Workload <input name="workload" value="{{workload}}"></label>
        <label>TEE <select name="tee">{{#tees}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/tees}}</select></label>
        <label>Status <select name="status">{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statuses}}</select></label>
        <label>From <input name="since" value="{{since}}" placeholder="2026-01-01T00:00:00Z"></label>
        <label>Until <input name="until" value="{{until}}" placeholder="RFC 3339"></label>
        <button type="submit">Filter</button>
        </form>
        <table class="list" id="appraisals">
        <thead><tr><th>Time</th><th>Workload</th><th>TEE</th><th>Status</th><th>Policy</th><th>Id</th></tr></thead>
        <tbody>
        {{#items}}
        <tr class="appraisal"><td>{{time}}</td><td class="workload">{{workload}}</td><td>{{tee}}</td>
        <td><span class="tier {{status}}">{{status}}</span></td><td class="mono">{{policy}}</td>
        <td><a class="mono" href="/ui/appraisals/{{id}}{{tenantQuery}}">{{id}}</a></td></tr>
        {{/items}}
        {{^items}}<tr><td colspan="6" class="muted">No appraisals match.</td></tr>{{/items}}
        </tbody>
        </table>
        {{#next}}<p><a href="{{next}}" id="next-page">Older →</a></p>{{/next}}
        """#

    static let appraisal = #"""
        <h1>Appraisal <span class="mono">{{id}}</span></h1>
        <section class="card verdict">
        <p class="big"><span class="tier {{status}}" id="verdict">{{status}}</span> {{verdictText}}</p>
        <dl>
        <dt>Tenant</dt><dd>{{tenant}}</dd>
        <dt>Workload</dt><dd id="workload">{{workload}}</dd>
        <dt>TEE</dt><dd>{{tee}}</dd>
        <dt>Time</dt><dd>{{time}}</dd>
        <dt>Policy</dt><dd class="mono">{{policy}}</dd>
        <dt>Evidence SHA-256</dt><dd class="mono">{{evidence}}</dd>
        {{#jti}}<dt>Token jti</dt><dd class="mono">{{jti}}</dd>{{/jti}}
        </dl>
        </section>
        <h2>Trust vector (AR4SI)</h2>
        <table class="list" id="trust-vector"><thead><tr><th>Claim</th><th>Value</th><th>Tier</th></tr></thead><tbody>
        {{#vector}}<tr><td>{{name}}</td><td>{{value}}</td><td><span class="tier {{tier}}">{{tier}}</span></td></tr>{{/vector}}
        </tbody></table>
        <h2>Trace</h2>
        {{#firstFailure}}<p class="alert bad" id="first-failure">First failing condition: <b>{{rule}}</b> — {{claim}} expected {{expected}}, was {{actual}}</p>{{/firstFailure}}
        <table class="list trace" id="trace"><thead><tr><th>Rule</th><th>Claim</th><th>Operator</th><th>Expected</th><th>Actual</th><th>Result</th></tr></thead><tbody>
        {{#trace}}<tr class="{{#first}}first-failure {{/first}}{{result}}"><td>{{rule}}</td><td class="mono">{{claim}}</td><td>{{operator}}</td>
        <td class="mono">{{expected}}</td><td class="mono">{{actual}}</td><td>{{result}}</td></tr>{{/trace}}
        </tbody></table>
        {{#hasTD}}
        <h2>TD claims</h2>
        <dl class="card mono" id="td-claims">
        {{#td}}<dt>{{name}}</dt><dd>{{value}}</dd>{{/td}}
        <dt>TCB status</dt><dd id="tcb-status">{{tcbStatus}}</dd>
        <dt>Advisories</dt><dd>{{#advisories}}<a href="{{url}}" rel="noreferrer">{{id}}</a> {{/advisories}}{{^advisories}}none{{/advisories}}</dd>
        </dl>
        {{/hasTD}}
        <h2>Claims (EAR annotated evidence)</h2>
        <pre class="json" id="claims">{{claims}}</pre>
        <h2>Policy source</h2>
        <p class="muted">{{policyNote}}</p>
        {{#policySource}}<pre class="json" id="policy-source">{{policySource}}</pre>{{/policySource}}
        <h2>Audit entry</h2>
        {{#audit}}<p>Entry <a href="/ui/audit/{{seq}}" id="audit-link">#{{seq}}</a> (leaf {{leaf}}), with its inclusion proof checked in your browser on the entry page.</p>{{/audit}}
        {{^audit}}<p class="muted">No audit entry was found for this appraisal.</p>{{/audit}}
        """#

    static let launches = #"""
        <h1>Launches{{#tenant}} of {{tenant}}{{/tenant}}</h1>
        <p class="muted">SEV and SEV-ES measured launches, newest first: each step with its time and outcome.</p>
        {{#items}}
        <section class="card launch">
        <h2 class="mono">{{id}}</h2>
        <p>Workload <b>{{workload}}</b> · {{tee}} · tenant {{tenant}} · policy {{policy}} · state <span class="tier {{stateClass}}">{{state}}</span></p>
        <table class="list steps"><thead><tr><th>Step</th><th>Time</th><th>Outcome</th></tr></thead><tbody>
        {{#steps}}<tr><td>{{name}}</td><td>{{time}}</td><td>{{outcome}}</td></tr>{{/steps}}
        </tbody></table>
        </section>
        {{/items}}
        {{^items}}<p class="muted" id="no-launches">No launches.</p>{{/items}}
        """#

    static let audit = #"""
        <h1>Audit log</h1>
        <section class="card" id="checkpoint" data-note="{{noteBase64}}" data-size="{{size}}">
        <p>Latest signed checkpoint: size <b>{{size}}</b>, root <span class="mono">{{root}}</span></p>
        <p id="consistency" class="muted">Checking the log against the checkpoint you saw last (needs JavaScript)…</p>
        </section>
        <form method="get" action="/ui/audit" class="filters">
        {{#serviceWide}}<label>Tenant <input name="tenant" id="filter-tenant" value="{{tenant}}"></label>{{/serviceWide}}
        <label>Type <select name="type">{{#types}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/types}}</select></label>
        <label>From <input name="since" value="{{since}}" placeholder="RFC 3339"></label>
        <button type="submit" id="filter">Filter</button>
        </form>
        <table class="list" id="entries"><thead><tr><th>#</th><th>Time</th><th>Tenant</th><th>Type</th><th>Actor</th></tr></thead><tbody>
        {{#items}}<tr class="entry"><td><a href="/ui/audit/{{seq}}">{{seq}}</a></td><td>{{time}}</td><td class="tenant">{{tenant}}</td><td>{{type}}</td><td class="mono">{{actor}}</td></tr>{{/items}}
        {{^items}}<tr><td colspan="5" class="muted">No entries match.</td></tr>{{/items}}
        </tbody></table>
        {{#next}}<p><a href="{{next}}" id="next-page">Next entries →</a></p>{{/next}}
        """#

    static let entry = #"""
        <h1>Audit entry #{{seq}}</h1>
        {{#leafMismatch}}<p class="alert bad" id="server-check">The stored entry does not hash to its recorded leaf: the log was changed.</p>{{/leafMismatch}}
        <section class="card" id="proof" data-index="{{seq}}" data-tree-size="{{treeSize}}" data-entry="{{bodyBase64}}"
         data-proof="{{proof}}" data-note="{{noteBase64}}" data-size="{{treeSize}}">
        <p id="proof-status" class="pending">Inclusion proof: not checked (the check runs in your browser with JavaScript).</p>
        <p id="consistency" class="muted">Checking the log against the checkpoint you saw last…</p>
        <dl>
        <dt>Leaf hash (stored)</dt><dd class="mono">{{leaf}}</dd>
        <dt>Checkpoint</dt><dd class="mono">size {{treeSize}}, root {{root}}</dd>
        <dt>Proof</dt><dd class="mono">{{proofCount}} hashes</dd>
        </dl>
        </section>
        <h2>Entry</h2>
        <dl class="card">
        <dt>Time</dt><dd>{{time}}</dd><dt>Tenant</dt><dd>{{tenant}}</dd><dt>Type</dt><dd>{{type}}</dd>
        {{#appraisalID}}<dt>Appraisal</dt><dd><a href="/ui/appraisals/{{appraisalID}}{{tenantQuery}}">{{appraisalID}}</a></dd>{{/appraisalID}}
        </dl>
        <pre class="json" id="entry-json">{{json}}</pre>
        <h2>Signed checkpoint</h2>
        <pre class="json">{{note}}</pre>
        """#

    static let overview = #"""
        <h1>Overview{{#tenant}} of {{tenant}}{{/tenant}}</h1>
        <h2>Decisions per day, last 30 days</h2>
        <figure class="card chart">{{{chart}}}
        <figcaption>{{#legend}}<span class="key {{name}}"></span>{{name}} {{total}} {{/legend}}{{#truncated}}<span class="muted">(the newest {{limit}} entries only)</span>{{/truncated}}</figcaption>
        </figure>
        {{#serviceWide}}<h2>Collateral freshness</h2>
        <table class="list" id="collateral"><thead><tr><th>FMSPC</th><th>TCB Info next update</th><th>PCK CRL next update</th><th>Root CA CRL next update</th></tr></thead><tbody>
        {{#collateral}}<tr><td class="mono">{{fmspc}}</td><td class="{{tcbClass}}">{{tcb}}</td><td class="{{pckClass}}">{{pck}}</td><td class="{{rootClass}}">{{root}}</td></tr>{{/collateral}}
        {{^collateral}}<tr><td colspan="4" class="muted">No collateral cached yet.</td></tr>{{/collateral}}
        </tbody></table>{{/serviceWide}}
        """#

    static let error = #"""
        <h1>{{heading}}</h1>
        <p class="alert bad" id="error">{{message}}</p>
        <p><a href="/ui/">Back to the console</a></p>
        """#
}
