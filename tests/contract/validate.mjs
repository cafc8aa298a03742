// Checks docs/openapi.yaml the way a client generator would read it: a
// standard OpenAPI 3.0 validator (@apidevtools/swagger-parser: the document's
// schema, then its semantics and every $ref), plus what the validator lets
// through but is almost always a YAML slip: a key without a value, or with a
// space (an unquoted comma in a flow mapping, `{description: a, b}`, makes `b`
// a key), and a schema whose `required` names a property it does not declare.
// Usage: node validate.mjs PATH-TO-openapi.yaml
import fs from "node:fs";
import yaml from "js-yaml";
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
    console.error("usage: node validate.mjs openapi.yaml");
    process.exit(2);
}
const problems = [];

// nulls and undeclared required properties, anywhere in the document
function walk(node, where) {
    if (Array.isArray(node)) {
        node.forEach((v, i) => walk(v, `${where}[${i}]`));
        return;
    }
    if (node === null || typeof node !== "object") return;
    for (const [k, v] of Object.entries(node)) {
        if (v === null) problems.push(`${where}/${k}: a key without a value (an unquoted comma?)`);
        // no name in an OpenAPI document has a space, but a sentence cut at a comma does
        else if (/\s/.test(k) && where !== "#/paths" && !/\/examples?(\/|$)/.test(where))
            problems.push(`${where}/${k}: a key with a space (an unquoted comma?)`);
        else walk(v, `${where}/${k}`);
    }
    if (Array.isArray(node.required) && node.properties && typeof node.properties === "object") {
        for (const r of node.required) {
            if (!(r in node.properties) && !node.allOf && !node.additionalProperties)
                problems.push(`${where}: required '${r}' is not among its properties`);
        }
    }
}

let doc;
try {
    doc = yaml.load(fs.readFileSync(file, "utf8"));
} catch (e) {
    console.error(`not YAML: ${e.message}`);
    process.exit(1);
}
walk(doc, "#");
try {
    await SwaggerParser.validate(file);
} catch (e) {
    problems.push(`validator: ${e.message}`);
}
if (problems.length) {
    for (const p of problems) console.error(p);
    console.error(`${file}: ${problems.length} problem(s)`);
    process.exit(1);
}
console.log(`${file}: valid OpenAPI ${doc.openapi}, ${Object.keys(doc.paths).length} paths`);
