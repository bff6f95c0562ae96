// Runs the Mustang validator (org.mustangproject:validator, from Maven Central through
// infra/mustang/pom.xml) on e-invoice files: a Factur-X/ZUGFeRD PDF (PDF/A-3 by veraPDF, the
// embedded XML) or a CII/UBL XML file (XML schema, EN 16931 schematron, XRechnung's when the
// document declares it). Mustang's command line (Mustang-CLI) is not published on Maven Central,
// so this launcher calls the validator's API; it runs as a single source file on the JDK:
//   java -cp 'var/mustang/libs/*' infra/mustang/Validate.java REPORT_DIR FILE...
// For each FILE it writes REPORT_DIR/<file name>.report.xml (Mustang's XML report) and prints
// "valid FILE" or "invalid FILE"; the exit status is 1 when any file is invalid.
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.transform.Transformer;
import javax.xml.transform.stream.StreamResult;
import javax.xml.transform.stream.StreamSource;
import org.mustangproject.validator.ZUGFeRDValidator;

public class Validate {
    static final String ARITHMETIC_CRASH = "Item.enrichProductFromVATBreakdown";
    static final String PEPPOL_BIS = "urn:fdc:peppol.eu:2017:poacc:billing:3.0";
    // OpenPeppol's BIS Billing 3.0 rules for UBL, from phive-rules-peppol (infra/mustang/pom.xml)
    static final String PEPPOL_XSLT = "external/schematron/openpeppol/2026.5/xslt/PEPPOL-EN16931-UBL.xslt";
    static final Pattern FATAL = Pattern.compile(
        "<svrl:failed-assert[^>]*flag=\"fatal\"[^>]*>.*?<svrl:text>(.*?)</svrl:text>", Pattern.DOTALL);

    /** The fatal findings of the Peppol BIS rules on a UBL file, as report lines. */
    static String peppolErrors(Path file) throws Exception {
        var factory = new net.sf.saxon.TransformerFactoryImpl();
        var xslt = Validate.class.getClassLoader().getResource(PEPPOL_XSLT);
        if (xslt == null) {
            throw new IllegalStateException(PEPPOL_XSLT + " is not on the classpath");
        }
        Transformer transformer = factory.newTransformer(new StreamSource(xslt.toString()));
        StringWriter svrl = new StringWriter();
        transformer.transform(new StreamSource(file.toFile()), new StreamResult(svrl));
        StringBuilder errors = new StringBuilder();
        Matcher m = FATAL.matcher(svrl.toString());
        while (m.find()) {
            errors.append("<error type=\"peppol\">").append(m.group(1).trim()).append("</error>\n");
        }
        return errors.toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Validate REPORT_DIR FILE...");
            System.exit(2);
        }
        Path reports = Path.of(args[0]);
        Files.createDirectories(reports);
        boolean allValid = true;
        for (int i = 1; i < args.length; i++) {
            ZUGFeRDValidator validator = new ZUGFeRDValidator();
            String report = validator.validate(args[i]);
            if (!validator.wasCompletelyValid() && report.contains(ARITHMETIC_CRASH)) {
                // Mustang's own arithmetic check (not a rule of EN 16931) dies on a line without
                // a VAT rate, which is what BR-O-05 requires of a "not subject" (O) line: that
                // file is validated again without it. The schema and schematron still run, and
                // the schematron checks the totals (BR-CO-10..16).
                validator = new ZUGFeRDValidator();
                validator.disableArithmeticCheck();
                report = validator.validate(args[i]);
            }
            boolean valid = validator.wasCompletelyValid();
            Path file = Path.of(args[i]);
            if (file.toString().endsWith(".xml") && Files.readString(file).contains(PEPPOL_BIS)) {
                // Mustang checks a UBL file against EN 16931 only: Peppol's own rules run here
                String errors = peppolErrors(file);
                report += "\n<peppol rules=\"" + PEPPOL_XSLT + "\">\n" + errors + "</peppol>\n";
                valid &= errors.isEmpty();
            }
            Path name = file.getFileName();
            Files.writeString(reports.resolve(name + ".report.xml"), report, StandardCharsets.UTF_8);
            allValid &= valid;
            System.out.println((valid ? "valid " : "invalid ") + args[i]);
        }
        System.exit(allValid ? 0 : 1);
    }
}
